# Sphinx configuration of precache's documentation (tox -e docs).

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '_exts'))

project = 'precache'
copyright = 'precache developers'

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'oslo_config.sphinxext',
    'cliff.sphinxext',
    'distribution_plot',
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']

# Pages include README.md and doc/*.md from outside this directory; their
# headings below the page title become anchors for cross-references.
myst_heading_anchors = 3

autodoc_member_order = 'bysource'
autodoc_default_options = {'members': True, 'show-inheritance': True}

# The plot of the distribution benchmark (_exts/distribution_plot.py).
distribution_plot_json = os.path.join(
    HERE, '..', 'distribution-testbed-result.json')

html_theme = 'alabaster'
html_title = 'precache'
