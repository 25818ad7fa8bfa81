// CFG module
