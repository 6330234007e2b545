"""Japanese full-text search over the case library.

analysis.py  normalisation, Sudachi word segmentation, character bigrams (Whoosh tokenizers)
querying.py  user query -> words, synonym groups and phrases; their matches and BM25 scores
index.py     the Whoosh index on disk (schema, generations, writer lock, reused searchers) and
             ReaderCache: per index version, postings and values as numpy arrays
bulk.py      writing many documents at once (reindex, imports): postings per term in memory,
             worker processes, each segment's postings file
postings_file.py  a segment's postings as plain arrays beside it, read through mmap
service.py   search_cases() / similar_cases(): permission mask from the policy, filters, exact
             counts and facets, ranking, snippets
snippets.py  highlighted snippets cut at sentence ends
params.py    search parameters from a query string (pages and API)
sync.py      the outbox: queue index work with the change, apply it after commit, reindex, check
backend.py   SearchBackend: the interface both backends offer, chosen by SEARCH_BACKEND
pg_backend.py the PostgreSQL backend: search_documents (tsvector + GIN/RUM), ts_rank, the policy's
             SQL clause inside every statement, documents written in the case's own transaction
"""
