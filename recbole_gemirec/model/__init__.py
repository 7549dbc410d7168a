"""Models of the extension, one module per model named after its class in lower case
(``model=GemiRec`` -> ``gemirec.py``), as RecBole looks them up."""
