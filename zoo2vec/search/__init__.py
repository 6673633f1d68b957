"""The search engine behind `Zoo.search`, one module per step of the data flow:

    query          a search request, validated (task, text, k, filters, verify)
    snapshot       the loaded index snapshot (catalog, FAISS indexes, reference embeddings, model profiles)
                   and candidate retrieval from it
    task_scoring   samples -> per-model TaskScore (kernel alignment, concept matches, the alignment's score)
    words          a sentence -> per-model WordsScore (card, named classes, decisions, prior; the words scorer)
    fusion         TaskScore and WordsScore -> one FusedScore per model, ranked
    verify         run the first n ranked results on the samples and put them first by the LogME of their outputs
                   (inside a search, or on results already shown: Zoo.verify)
    explain        the `why` text of a result
    results        SearchResult, SearchResults: what the user gets back
    engine         runs the steps in order and builds the results
"""
