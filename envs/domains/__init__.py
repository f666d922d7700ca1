"""The built-in domains, one module each; importing this package registers them all.

A new domain is one module here (its vocabulary, text templates, signals, delays, reward weights and the
response model it uses, ending with ``register_domain(...)``) and one file in ``conf/env/``; a domain of
your own outside the package registers itself the same way (see the README's "Extending FeedbackRec").
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
