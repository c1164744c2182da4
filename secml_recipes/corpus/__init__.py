"""Training data: the corpus tarball (`tarball`: build, open safely, read without losing a row), real reports
turned into rows (`ingest`), generalist episodes (`episodes`) and corpora mixed by weight (`mixture`).
`python -m secml_recipes.corpus` (or `secml data`) is its command."""
