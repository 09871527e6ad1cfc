"""Tools that work on run folders and models: compare, sweep, doctor, summary, export, ... one module each."""
