from customers.ingest.cli import ImportCommand


class Command(ImportCommand):
    help = "Import orders from a CSV file (idempotent on their ids); see customers/ingest/."
    kind = "orders"
    has_create_missing_customers = True
