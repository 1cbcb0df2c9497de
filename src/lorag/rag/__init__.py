"""Retrieval-augmented generation over a folder of documents: loading, prompting, indexing and answering."""
