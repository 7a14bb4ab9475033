"""The Sync page in the deployed Airflow UI, driven by a real headless Chromium (Debian ``chromium`` and
``chromium-driver``, through selenium), the way a person uses it.

After one real run of a pipeline that quarantines 3 of 20 rows and masks e-mail addresses, the test signs
in through Airflow's login form, opens "Sync" in the UI, reads the table's line (rows extracted, loaded,
rejected, quarantined, the log link), opens the quarantine view (masked values only), and resets the
watermark through the confirmation step, then checks the Variable and the audit row. The page inside the
UI is kept as ``.test-artifacts/deployment/sync-page.png``. Requests without a valid Airflow credential are
refused.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from airflow_provider_sync.watermarks import variable_key
from tests.deployment.conftest import ARTIFACTS_DIR, SOURCE_CONN_ID, TARGET_CONN_ID
from tests.deployment.harness import Deployment

DAG_ID = "page_orders"
TABLE = "page_orders"
ROWS, NEGATIVE = 20, (18, 19, 20)
FIRST = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
SCREENSHOT = ARTIFACTS_DIR / "sync-page.png"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_S = 30

PIPELINE = f"""version: 1
dag_id: {DAG_ID}
schedule: null
source: {{conn_id: {SOURCE_CONN_ID}, table: {TABLE}}}
target: {{conn_id: {TARGET_CONN_ID}, table: {TABLE}, mode: upsert, keys: [id], create_if_missing: true}}
incremental: {{strategy: timestamp, column: updated_at, key: [id], lag: 0s}}
steps:
  - validate:
      on_invalid: quarantine
      rules:
        amount: {{min: 0}}
  - mask:
      columns:
        email: email
"""


def email(order_id: int) -> str:
    return f"buyer{order_id}@shop.example"


@pytest.fixture(scope="module")
def synced(deployment: Deployment) -> tuple[Deployment, str]:
    """The pipeline deployed and run once: 20 source rows, 3 with a negative amount."""
    deployment.sql(
        SOURCE_CONN_ID,
        f"create table {TABLE} (id int primary key, email text, amount numeric(10, 2), "
        "updated_at timestamptz)",
    )
    for order_id in range(1, ROWS + 1):
        amount = Decimal("-5.00") if order_id in NEGATIVE else Decimal(order_id)
        deployment.sql(
            SOURCE_CONN_ID,
            f"insert into {TABLE} values (%s, %s, %s, %s)",
            (order_id, email(order_id), amount, FIRST + dt.timedelta(minutes=order_id)),
        )
    deployment.write_pipeline(DAG_ID, PIPELINE)
    deployment.wait_for_dag(DAG_ID)
    run_id = deployment.trigger(DAG_ID)
    assert deployment.wait_for_run(DAG_ID, run_id) == "success", deployment.task_states(DAG_ID, run_id)
    return deployment, run_id


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        message = "Debian chromium and chromium-driver are not installed; run scripts/bootstrap.sh"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1600,1000")
    # The driver is Debian's: selenium must not look for (or download) one of its own.
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def element(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return wait_for(driver, ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def follow(driver: Any, css: str) -> None:
    """Click a link or button that loads a new page, and wait until the old page is gone.

    Without the wait, the next lookup can find an element of the page being left, which goes stale
    under the test's hands once the new page arrives.
    """
    from selenium.webdriver.support import expected_conditions as ec

    old_page = driver.find_element("tag name", "html")
    element(driver, css).click()
    wait_for(driver, ec.staleness_of(old_page))


def table_line(driver: Any) -> list[str]:
    row = element(driver, f"tr[data-dag='{DAG_ID}'][data-table='{TABLE}']")
    return [cell.text for cell in row.find_elements("css selector", "td")]


def sign_in_and_open_sync(airflow: Deployment, driver: Any) -> None:
    """Open the Sync page of the UI: Airflow sends the browser to its login form first."""
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{airflow.base_url}/plugin/sync")
    wait_for(driver, ec.url_contains("/auth/login"))
    element(driver, "input[name='username']").send_keys(airflow.username)
    element(driver, "input[name='password']").send_keys(airflow.password)
    element(driver, "button[type='submit']").click()
    wait_for(driver, ec.url_contains("/plugin/sync"))
    frame = element(driver, "iframe")  # the UI shows the plugin's page in a frame of its own
    wait_for(driver, ec.frame_to_be_available_and_switch_to_it(frame))


def test_requests_without_a_valid_airflow_login_are_refused(synced: tuple[Deployment, str]) -> None:
    airflow, _ = synced
    page = f"{airflow.base_url}/sync/"
    assert httpx.get(page, timeout=30).status_code == 401
    forged = httpx.get(page, cookies={"_token": "not-a-token"}, timeout=30)
    assert forged.status_code == 401
    browser_like = httpx.get(page, headers={"Accept": "text/html"}, timeout=30)
    assert browser_like.status_code == 303 and "/auth/login" in browser_like.headers["location"]
    change = httpx.post(
        f"{airflow.base_url}/sync/watermark/{DAG_ID}/{TABLE}", data={"action": "reset"}, timeout=30
    )
    assert change.status_code == 401
    quarantine = httpx.get(f"{airflow.base_url}/sync/quarantine/{DAG_ID}/{TABLE}", timeout=30)
    assert quarantine.status_code == 401 and email(18) not in quarantine.text
    signed_in = httpx.get(page, headers={"Authorization": f"Bearer {airflow.token()}"}, timeout=60)
    assert signed_in.status_code == 200 and f"data-dag='{DAG_ID}'" in signed_in.text


def test_a_forged_confirmation_changes_nothing(synced: tuple[Deployment, str]) -> None:
    airflow, _ = synced
    answer = httpx.post(
        f"{airflow.base_url}/sync/watermark/{DAG_ID}/{TABLE}",
        data={"confirm": "yes", "token": "made-up"},
        headers={"Authorization": f"Bearer {airflow.token()}"},
        timeout=60,
    )
    assert answer.status_code == 400 and "start the change again" in answer.text
    assert airflow.api("GET", f"/variables/{variable_key(DAG_ID, TABLE)}").status_code == 200


def test_sync_page_in_the_ui_shows_the_run_quarantine_and_resets_the_watermark(
    synced: tuple[Deployment, str], browser: Any
) -> None:
    airflow, run_id = synced
    sign_in_and_open_sync(airflow, browser)

    loaded = airflow.sql(TARGET_CONN_ID, f"select count(*) from {TABLE}")[0][0]
    assert loaded == ROWS - len(NEGATIVE)
    cells = table_line(browser)
    table, watermark, _, last_run, extracted, loaded_cell, rejected, quarantined, logs, _ = cells
    assert table.startswith(TABLE) and "timestamp on updated_at" in table
    last_row = (FIRST + dt.timedelta(minutes=ROWS)).isoformat()
    assert last_row in watermark and "key 20" in watermark, watermark
    assert last_run.startswith("success") and run_id in last_run, last_run
    assert (extracted, loaded_cell, rejected) == (str(ROWS), str(loaded), str(len(NEGATIVE))), cells
    assert quarantined.startswith(str(len(NEGATIVE))), quarantined
    log_link = element(browser, f"tr[data-dag='{DAG_ID}'] a[href*='/tasks/']").get_attribute("href")
    assert f"/dags/{DAG_ID}/runs/" in log_link and logs in log_link, log_link

    browser.switch_to.default_content()  # the picture: the whole UI with the page in it
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.get_screenshot_as_file(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 10_000
    browser.switch_to.frame(element(browser, "iframe"))

    follow(browser, f"tr[data-dag='{DAG_ID}'] a[href*='/quarantine/']")
    text = element(browser, "table#quarantine").text
    assert text.count(run_id) == len(NEGATIVE), text
    assert all(email(order_id) not in text for order_id in NEGATIVE)  # stored masked
    assert "b***@shop.example" in text and '"amount": "-5.00"' in text, text

    follow(browser, "a[href$='/sync/']")
    follow(browser, f"tr[data-dag='{DAG_ID}'] a[href*='/watermark/']")
    follow(browser, "#review-reset")
    assert "?" in element(browser, "h1").text  # a question first: nothing has changed yet
    assert airflow.api("GET", f"/variables/{variable_key(DAG_ID, TABLE)}").status_code == 200
    follow(browser, "#confirm")
    assert "changed" in element(browser, "h1").text
    assert "audit row watermark_reset written" in browser.page_source

    assert airflow.api("GET", f"/variables/{variable_key(DAG_ID, TABLE)}").status_code == 404
    rows = airflow.sql(
        TARGET_CONN_ID,
        "select run_type, triggered_by, watermark_before, watermark_after from sync_audit "
        "where dag_id = %s and table_name = %s and step = 'watermark_reset'",
        (DAG_ID, TABLE),
    )
    assert len(rows) == 1, rows
    run_type, triggered_by, before, after = rows[0]
    assert (run_type, triggered_by, after) == ("ui", f"sync page ({airflow.username})", None)
    assert last_row in str(before)
    follow(browser, "a[href$='/sync/']")
    assert "not set" in table_line(browser)[1]
