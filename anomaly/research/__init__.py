"""Research code: the benchmark harness (``anomaly bench``) and the baselines it measures against.

Kept apart from the product: nothing in the detector, the CLI's scoring paths, the scheduler or the
dashboard imports it. It reuses the product's detector with its defaults, so what it measures is
what a user gets.
"""
