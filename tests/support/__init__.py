"""Helpers the tests share (importable as ``support.*``: pytest puts tests/ on the path).

No module here is named like a standard-library one: ``dispatch_victim.py`` runs as a script, which puts this
directory first on its ``sys.path``.
"""
