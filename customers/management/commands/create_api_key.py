import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from customers.services import COMMAND_LINE, create_api_key


class Command(BaseCommand):
    help = (
        "Create an ingest API key for a source and print it; only its digest is stored, so this "
        "is the one time the key is shown."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="the source that will use the key, e.g. 'shop'")
        parser.add_argument(
            "--json", action="store_true", help="print {id, name, prefix, key} as one JSON object"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            api_key, key = create_api_key(name=options["name"], actor=COMMAND_LINE)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {"id": api_key.pk, "name": api_key.name, "prefix": api_key.prefix, "key": key},
                    ensure_ascii=False,
                )
            )
            return
        self.stdout.write(key)
        self.stderr.write(
            f"API key {api_key.prefix} for {api_key.name!r} created. Copy it now: it is not "
            f"stored and cannot be shown again. Send it as 'Authorization: Bearer <key>'."
        )
