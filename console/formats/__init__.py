"""The console's own number and date formats per language (settings.FORMAT_MODULE_PATH).

Only what differs from Django's locale formats is set here; the rest falls back to Django's.
"""
