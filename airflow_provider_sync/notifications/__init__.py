"""Pipeline alerts: Airflow notifiers (log, e-mail, webhook) and the secret-free messages they send.

``notifications.notifiers`` holds the ``BaseNotifier`` subclasses and ``notifier_from_config``;
``notifications.message`` builds alert text from callback contexts and scrubs error messages;
``notifications.webhook`` posts to an address read from an Airflow connection. The callbacks wired into
DAGs from the ``alerts:`` YAML section live in ``airflow_provider_sync.callbacks``.
"""
