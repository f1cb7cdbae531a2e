from customers.ingest.cli import ImportCommand


class Command(ImportCommand):
    help = "Import customers from a CSV file (idempotent on their ids); see customers/ingest/."
    kind = "customers"
