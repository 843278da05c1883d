"""Reading untrusted documents: their kind and text (formats), in a process with limits (child,
sandbox), cut into passages (chunks)."""
