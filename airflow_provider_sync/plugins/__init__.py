"""The Airflow UI plugin: a Sync page listing, per pipeline and table, the watermark, the last run and the
quarantine, served by a FastAPI app under the API server (``/sync``) and linked from the UI's navigation.

:mod:`.sync_page` holds the plugin class Airflow loads in every process; it imports nothing heavy. The app
(:mod:`.app`), the data it shows (:mod:`.state`) and the HTML (:mod:`.html`) load only in the API server.
"""
