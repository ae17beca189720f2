import os
import sys

# Make tests/helpers.py importable as `helpers` from every test package.
sys.path.insert(0, os.path.dirname(__file__))
