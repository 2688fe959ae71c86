"""Ghosts: definitions, the tool loop, tools, confinement (confined opens, the bubblewrap jail,
secret rules) and the classifier. Speaks no HTTP: the pipeline hands it a model-call function."""
