"""Validation: columns mapped to API fields, phones to E.164, emails normalised, in-file duplicates
dropped; each row valid or invalid with a reason (``rows.validate_batches``)."""
