"""Japanese full-text search over the case library.

analysis.py  normalisation, Sudachi word segmentation, character bigrams (Whoosh tokenizers)
querying.py  user query -> Whoosh query (words, synonyms, phrases, minimum match)
index.py     the Whoosh index on disk: schema, generations, writer lock, reused searchers
service.py   search_cases(): permission filter from the policy, counts, facets, snippets
sync.py      the outbox: queue index work with the change, apply it after commit, reindex, check
"""
