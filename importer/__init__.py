"""kirim-import: bulk contact importer for the Kirim WhatsApp Business API."""

__version__ = "0.3.0"
