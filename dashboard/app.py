"""``streamlit run dashboard/app.py`` from a checkout: the app itself is ``anomaly/dashboard``.

The dashboard ships inside the package (``pip install 'lstm-anomaly[dashboard]'`` then
``anomaly dashboard``); this file only keeps the checkout's short path working.
"""

from anomaly.dashboard.app import main

main()
