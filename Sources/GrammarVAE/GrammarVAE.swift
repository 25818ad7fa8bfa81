// GrammarVAE module
