"""Contact imports: reading CSV and XLSX files, recognising their columns, validating
addresses and writing contacts in set-based chunks.

- `reader`: bytes to rows (encoding and delimiter detection, XLSX cells as text);
- `columns`: headers to meaning (address, name, attributes);
- `service`: the import itself (dry run and real run share one code path);
- `writers`: one chunk's set-based writes;
- `jobs`: import jobs (upload, preview, confirm, run, report).

The rules of a contact address are in contacts.addresses, which contacts.models uses.
"""
