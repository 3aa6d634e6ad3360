"""Running the code blocks of the README and the docs pages (``tests/test_docs.py``)."""
