"""The platform's resource controllers: a table of kinds, generic actions, and per-kind differences."""
