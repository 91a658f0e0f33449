"""Reading: the file's format, encoding and structure, as text rows in batches (``open_source``)."""
