"""The stackyard operator: kopf handlers over pure render functions."""
