"""The text lab's library: tokenizers, stemming, stopwords, bag-of-words, vocabulary, word vectors."""
