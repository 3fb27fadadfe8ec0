#!/usr/bin/python3
"""The console (dropq-web) in a real browser: Debian's headless Chromium,
driven by python3-selenium, against real redis-server, dropqd and dropq-web
processes on loopback ports, with real files in temporary directories.

Run by ctest (tests/CMakeLists.txt) with the binaries in DROPQD_BIN,
DROPQCTL_BIN and DROPQ_WEB_BIN; screenshots of the three views go to
DROPQ_SCREENSHOTS when it is set (tests/CMakeLists.txt sets it to the build
tree, or to docs/screenshots when asked). Chromium runs with --no-sandbox:
its sandbox cannot start as root, which is how CI runs.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DROPQD = os.environ["DROPQD_BIN"]
DROPQCTL = os.environ["DROPQCTL_BIN"]
DROPQ_WEB = os.environ["DROPQ_WEB_BIN"]
SHOTS = os.environ.get("DROPQ_SCREENSHOTS", "")
TOKEN = "console-test-token-0123456789"
HOSTILE = ["<img src=x onerror=alert(1)>.png", "\"';</script>.png"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def wait_for(what, fn, timeout=30.0, every=0.1):
    """Polls fn() until it returns a true value, which it returns; fails
    the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # a page being redrawn, a file being moved
            last = e
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Redis:
    def __init__(self, tmp):
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("redis-server", lambda: self.cli("PING") == "PONG", timeout=10)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()


class Env:
    """redis-server, one or more dropqd instances and a dropq-web, in a
    temporary directory. Queue `q` watches `inbox` (recursively) and runs
    `handler` (an exec command line)."""

    def __init__(self, handler, workers=2, token=True, instances=1, web_as_nobody=False):
        self.tmp = tempfile.mkdtemp(prefix="dropq-console-")
        self.inbox = os.path.join(self.tmp, "inbox")
        self.done = os.path.join(self.tmp, "done")
        self.failed = os.path.join(self.tmp, "failed")
        for d in (self.inbox, self.done, self.failed):
            os.makedirs(d)
        self.redis = Redis(self.tmp)
        self.daemons = []
        self.configs = []
        for i in range(instances):
            # The first instance watches and runs handlers, the others run
            # handlers on the jobs it enqueues.
            cfg = os.path.join(self.tmp, "dropq-%d.yaml" % i)
            with open(cfg, "w") as f:
                f.write(self.config(handler, workers, "console-%d" % (i + 1),
                                    "both" if i == 0 else "consume"))
            self.configs.append(cfg)
        self.config_path = self.configs[0]
        for i in range(instances):
            self.start_daemon(i)
        self.web_log = os.path.join(self.tmp, "web.log")
        args = [DROPQ_WEB, "-c", self.config_path, "--listen", "127.0.0.1:0"]
        if web_as_nobody:
            # As a console on another host: it cannot see the failure directory.
            os.chmod(self.tmp, 0o755)
            os.chmod(self.config_path, 0o644)
            os.chmod(self.failed, 0o700)
            args = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all"] + args
        if token:
            tf = os.path.join(self.tmp, "token")
            with open(tf, "w") as f:
                f.write(TOKEN + "\n")
            os.chmod(tf, 0o600)
            if web_as_nobody:
                os.chown(tf, 65534, 65534)
            args += ["--token-file", tf]
        with open(self.web_log, "w") as log:
            self.web = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        self.port = int(wait_for("dropq-web to listen", self.web_port, timeout=15))
        self.base = "http://127.0.0.1:%d" % self.port

    def config(self, handler, workers, instance, role):
        return (
            "redis:\n  url: redis://127.0.0.1:%d/0\n  prefix: dropq\n"
            "instance: %s\nlog_level: info\ndrain_timeout: 10s\nheartbeat_ttl: 3s\n"
            "queues:\n  - name: q\n    watch: %s\n    recursive: true\n    role: %s\n"
            "    workers: %d\n    settle: 0s\n    handler:\n      exec: %s\n      timeout: 20s\n"
            "    retry: { max_attempts: 1 }\n"
            "    on_success: { move_to: %s }\n    on_failure: { move_to: %s }\n"
            % (self.redis.port, instance, self.inbox, role, workers, json.dumps(handler),
               self.done, self.failed))

    def start_daemon(self, i):
        log = os.path.join(self.tmp, "dropqd-%d.log" % i)
        with open(log, "w") as f:
            p = subprocess.Popen([DROPQD, "-c", self.configs[i]], stdout=subprocess.DEVNULL,
                                 stderr=f)
        self.daemons.append((p, log))
        wait_for("dropqd %d to start" % i,
                 lambda: any(m in read(log) for m in ("scan.done", "queue.consuming")),
                 timeout=20)

    def web_port(self):
        for line in read(self.web_log).splitlines():
            if "console.listening" in line:
                return line.split("port=")[1].split()[0]
        return None

    def close(self):
        self.web.terminate()
        self.web.wait(timeout=10)
        for p, _ in self.daemons:
            p.send_signal(signal.SIGTERM)
        for p, _ in self.daemons:
            p.wait(timeout=30)
        self.redis.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def drop(self, relpath, content="x"):
        """Writes a file elsewhere and renames it into the inbox; `relpath`
        may be bytes (a name that is not UTF-8)."""
        if isinstance(relpath, bytes):
            relpath = os.fsdecode(relpath)
        path = os.path.join(self.inbox, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(self.tmp, "partial")
        with open(tmp, "w") as f:
            f.write(content)
        os.rename(tmp, path)

    def ctl(self, *args):
        r = subprocess.run([DROPQCTL, "-c", self.config_path] + list(args), capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("dropqctl %s: %d %s" % (args, r.returncode, r.stderr))
        return json.loads(r.stdout)

    def status(self):
        return self.ctl("status", "--json")["queues"]["q"]

    def request(self, path, method="GET", body=None, headers=None):
        """(status, JSON body) of one API request."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=dict(headers or {}))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        o = Options()
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                  "--window-size=1400,900", "--disable-gpu"):
            o.add_argument(a)
        o.binary_location = "/usr/bin/chromium"
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        cls.browser.set_page_load_timeout(30)

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()

    def setUp(self):
        self.env = None

    def tearDown(self):
        if self.env:
            self.env.close()

    # -------------------------------------------------------------- helpers

    def open(self, fragment="#/"):
        b = self.browser
        b.get(self.env.base + "/" + fragment)
        b.refresh()  # a new fragment alone would not reload the page
        wait_for("the page to draw", lambda: b.find_element(By.ID, "view").text.strip())

    def overview_text(self, element_id):
        """The text of an element of the overview, which is drawn anew every
        second: an element found just before a redraw is gone when read."""
        return wait_for("#" + element_id,
                        lambda: self.browser.find_element(By.ID, element_id).text, timeout=10)

    def cell(self, field):
        return self.browser.find_element(
            By.CSS_SELECTOR, '#queues td[data-queue="q"][data-field="%s"]' % field).text

    def type_into(self, element_id, text):
        """Types into an input once the view drawing it has settled."""
        def typed():
            e = self.browser.find_element(By.ID, element_id)
            e.clear()
            e.send_keys(text)
            return e.get_attribute("value") == text
        wait_for("input #" + element_id, typed, timeout=10)

    def click(self, element_id):
        wait_for("button #" + element_id,
                 lambda: self.browser.find_element(By.ID, element_id).click() or True, timeout=10)

    def unlock(self):
        b = self.browser
        self.type_into("token", TOKEN)
        self.click("token-apply")
        wait_for("actions enabled", lambda: b.find_element(By.ID, "mode").text == "actions enabled")

    def assert_no_dialog(self):
        try:
            alert = self.browser.switch_to.alert
            text = alert.text
            alert.dismiss()
            self.fail("a dialog opened: %r" % text)
        except NoAlertPresentException:
            pass

    def shot(self, name):
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            self.browser.save_screenshot(os.path.join(SHOTS, "console-%s.png" % name))

    # -------------------------------------------------------------- tests

    def test_overview_follows_a_burst_and_agrees_with_dropqctl(self):
        self.env = Env(["/bin/sh", "-c", "sleep 0.05; case \"$1\" in *7.dat) "
                        "echo \"convert: bad header in $1\" >&2; exit 65;; esac", "sh", "{relpath}"])
        self.open()
        for i in range(400):
            self.env.drop("burst/f%03d.dat" % i)
        seen = set()

        def moved():
            seen.add(int(self.cell("done")) + int(self.cell("failed")))
            return len(seen) >= 3
        wait_for("the overview's counts to move during the burst", moved)
        quiet = lambda: self.env.status()["pending"] == 0 and self.env.status()["active"] == 0
        wait_for("the burst to end", quiet, timeout=120)
        status = self.env.status()
        self.assertEqual(status["done"] + status["failed"], 400)

        def agrees():
            return all(self.cell(f) == str(status[f])
                       for f in ("pending", "active", "scheduled", "failed", "done"))
        wait_for("the overview to equal dropqctl status --json", agrees, timeout=10)
        # The chart's counters (per minute, written by dropqd) add up.
        def rates():
            _, o = self.env.request("/api/overview")
            q = o["queues"][0]
            return (sum(r["done"] for r in q["rates"]) == status["done"] and
                    sum(r["failed"] for r in q["rates"]) == status["failed"] and
                    sum(r["enqueued"] for r in q["rates"]) == 400)
        wait_for("the rates to add up", rates, timeout=15)
        # The instance holds no job once the queue is quiet.
        wait_for("the heartbeat to say 0 active jobs",
                 lambda: self.env.request("/api/overview")[1]["instances"][0]["active"] == 0,
                 timeout=15)
        self.open()
        # The recent failures list names and errors.
        recent = self.overview_text("recent-failed")
        self.assertIn("7.dat", recent)
        self.shot("overview")
        # Instances: this one, its version and role.
        inst = self.overview_text("instances")
        self.assertIn("console-1", inst)
        self.assertIn("q: both", inst)

        # A failed job's page shows its stderr tail and where the file went.
        self.open("#/queue/q?state=failed")
        self.shot("queue")
        link = self.browser.find_element(By.CSS_SELECTOR, "#jobs tbody tr a")
        job_id = link.text
        link.click()
        wait_for("the job page", lambda: self.browser.find_element(By.ID, "stderr").text)
        self.assertIn("convert: bad header in burst/", self.browser.find_element(By.ID, "stderr").text)
        self.assertIn(self.env.failed, self.browser.find_element(By.ID, "file-now").text)
        self.assertIn("exit=65", self.browser.find_element(By.CSS_SELECTOR, ".attempt").text)
        self.assertEqual(self.browser.find_element(By.CSS_SELECTOR, 'dd[data-field="id"]').text, job_id)
        self.shot("job")

    def test_search_finds_a_job_by_name_among_5000(self):
        self.env = Env(["/bin/true"], workers=4)
        for i in range(5000):
            self.env.drop("d%02d/file-%04d.txt" % (i % 50, i))
        wait_for("5,000 jobs done", lambda: self.env.status()["done"] == 5000, timeout=240)
        self.open("#/queue/q?state=done")
        b = self.browser
        self.assertEqual(b.find_element(By.ID, "total").get_attribute("data-total"), "5000")
        self.type_into("f-match", "file-4242")
        self.click("f-apply")
        wait_for("one match", lambda: b.find_element(By.ID, "total").get_attribute("data-total") == "1")
        rows = b.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
        self.assertEqual(len(rows), 1)
        self.assertIn("d42/file-4242.txt", rows[0].text)
        # A glob, and an id prefix.
        job_id = rows[0].get_attribute("data-job")
        self.open("#/queue/q?state=done&match=d07%2F*.txt")
        self.assertEqual(b.find_element(By.ID, "total").get_attribute("data-total"), "100")
        self.open("#/queue/q?state=done&id=" + job_id)
        self.assertEqual(b.find_element(By.ID, "total").get_attribute("data-total"), "1")

    def test_retry_all_matching_retries_exactly_the_set_shown(self):
        flag = os.path.join(tempfile.gettempdir(), "dropq-fail-%d" % os.getpid())
        open(flag, "w").close()
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        self.env = Env(["/bin/sh", "-c", "if test -e \"$2\"; then echo 'upstream down' >&2; exit 65; fi",
                        "sh", "{name}", flag])
        for i in range(30):
            self.env.drop("alpha-%02d.dat" % i)
        for i in range(70):
            self.env.drop("beta-%02d.dat" % i)
        wait_for("100 failed", lambda: self.env.status()["failed"] == 100, timeout=60)
        os.unlink(flag)  # the handler succeeds from now on
        self.open("#/queue/q?state=failed")
        self.unlock()
        b = self.browser
        self.type_into("f-match", "alpha-")
        self.click("f-apply")
        wait_for("30 matching", lambda: b.find_element(By.ID, "total").get_attribute("data-total") == "30")
        self.click("retry-all")
        confirm = wait_for("the confirmation", lambda: b.find_element(By.ID, "confirm-yes"))
        self.assertEqual(confirm.text, "Confirm 30")
        # A job that fails after the set was shown is not part of it.
        open(flag, "w").close()
        self.env.drop("alpha-late.dat")
        wait_for("101 failed", lambda: self.env.status()["failed"] == 101, timeout=30)
        os.unlink(flag)
        confirm.click()
        wait_for("the result", lambda: "Retried 30" in b.find_element(By.ID, "result").text)
        wait_for("30 done", lambda: self.env.status()["done"] == 30, timeout=60)
        left = self.env.ctl("list", "q", "--state", "failed", "--json", "--limit", "1000")
        names = sorted(j["name"] for j in left["jobs"])
        self.assertEqual(names, sorted(["beta-%02d.dat" % i for i in range(70)] + ["alpha-late.dat"]))
        done = self.env.ctl("list", "q", "--state", "done", "--json", "--limit", "1000")
        self.assertEqual(sorted(j["name"] for j in done["jobs"]),
                         ["alpha-%02d.dat" % i for i in range(30)])
        # Logged: who, what, how many.
        log = read(self.env.web_log)
        self.assertIn("console.action action=retry queue=q asked=30 done=30 from=127.0.0.1", log)
        # Delete by filter: the 70 beta records go, alpha-late stays.
        self.open("#/queue/q?state=failed&match=beta-")
        self.click("delete-all")
        wait_for("the confirmation", lambda: b.find_element(By.ID, "confirm-yes")).click()
        wait_for("the result", lambda: "Deleted 70" in b.find_element(By.ID, "result").text)
        self.assertEqual(self.env.status()["failed"], 1)
        self.assertIn("console.action action=delete_failed queue=q asked=70 done=70", read(self.env.web_log))

    def test_a_console_that_cannot_see_the_file_asks_its_dropqd(self):
        flag = os.path.join(tempfile.gettempdir(), "dropq-fail-asked-%d" % os.getpid())
        open(flag, "w").close()
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        self.env = Env(["/bin/sh", "-c", "if test -e \"$1\"; then exit 65; fi", "sh", flag],
                       web_as_nobody=True)
        self.env.drop("far.dat")
        wait_for("failed", lambda: self.env.status()["failed"] == 1)
        os.unlink(flag)
        job = self.env.ctl("list", "q", "--state", "failed", "--json")["jobs"][0]["id"]
        self.open("#/job/" + job)
        self.unlock()
        self.click("retry-one")
        wait_for("the request", lambda: "Asked console-1, which holds the file, to retry it"
                 in self.browser.find_element(By.ID, "banner").text)
        wait_for("done", lambda: self.env.status()["done"] == 1, timeout=30)
        self.assertTrue(os.path.exists(os.path.join(self.env.done, "far.dat")))
        self.assertIn("retry.done queue=q job=" + job, read(self.env.daemons[0][1]))

    def test_pause_in_the_page_stops_claims_on_two_instances(self):
        self.env = Env(["/bin/true"], instances=2)
        self.open()
        self.unlock()
        b = self.browser
        wait_for("both instances", lambda: "console-2" in b.find_element(By.ID, "instances").text)
        wait_for("the pause button", lambda: b.find_element(
            By.CSS_SELECTOR, 'button[data-action="pause"][data-queue="q"]').click() or True)
        wait_for("paused", lambda: "paused" in self.cell("state"))
        self.assertTrue(self.env.status()["paused"])
        for i in range(50):
            self.env.drop("p%02d.dat" % i)
        wait_for("50 pending", lambda: self.env.status()["pending"] == 50, timeout=20)
        time.sleep(2)  # both instances had time to claim, were they going to
        s = self.env.status()
        self.assertEqual((s["pending"], s["active"], s["done"]), (50, 0, 0))
        wait_for("the resume button", lambda: b.find_element(
            By.CSS_SELECTOR, 'button[data-action="resume"][data-queue="q"]').click() or True)
        wait_for("50 done", lambda: self.env.status()["done"] == 50, timeout=60)
        owners = set()
        for j in self.env.ctl("list", "q", "--state", "done", "--json", "--limit", "100")["jobs"]:
            owners.add(j.get("owner", "console-1"))
        self.assertTrue(owners <= {"console-1", "console-2"}, owners)
        self.assertIn("console.action action=pause queue=q asked=1 done=1", read(self.env.web_log))

    def test_without_the_token_the_console_is_read_only(self):
        self.env = Env(["/bin/sh", "-c", "exit 65"])
        self.env.drop("a.dat")
        wait_for("failed", lambda: self.env.status()["failed"] == 1)
        self.open()
        b = self.browser
        self.assertEqual(b.find_element(By.ID, "mode").text, "read-only: enter the token to act")
        self.assertEqual(b.find_elements(By.CSS_SELECTOR, "button[data-action]"), [])
        self.open("#/queue/q?state=failed")
        self.assertEqual(b.find_elements(By.ID, "retry-all"), [])
        self.assertEqual(b.find_elements(By.ID, "delete-all"), [])
        job = self.env.ctl("list", "q", "--state", "failed", "--json")["jobs"][0]["id"]
        self.open("#/job/" + job)
        self.assertEqual(b.find_elements(By.ID, "retry-one"), [])
        # The API: 401 without the token or with a wrong one; nothing changed.
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            for path, body in (("/api/queues/q/pause", {}), ("/api/jobs/%s/retry" % job, {}),
                               ("/api/queues/q/retry", {"ids": [job]}),
                               ("/api/queues/q/delete", {"ids": [job]})):
                code, reply = self.env.request(path, "POST", body, headers)
                self.assertEqual(code, 401, (path, headers, reply))
        self.assertEqual(self.env.status()["failed"], 1)
        self.assertFalse(self.env.status()["paused"])
        # A wrong token typed into the page enables nothing.
        self.open()
        self.type_into("token", "wrong-token-0123456789")
        self.click("token-apply")
        wait_for("wrong token", lambda: b.find_element(By.ID, "mode").text == "read-only (wrong token)")
        self.assertEqual(b.find_elements(By.CSS_SELECTOR, "button[data-action]"), [])

    def test_a_console_without_a_token_file_refuses_every_action(self):
        self.env = Env(["/bin/true"], token=False)
        self.open()
        self.assertEqual(self.browser.find_element(By.ID, "mode").text, "read-only (no token configured)")
        code, reply = self.env.request("/api/queues/q/pause", "POST", {},
                                       {"Authorization": "Bearer " + TOKEN})
        self.assertEqual(code, 403, reply)
        self.assertIn("read-only", reply["error"])

    def test_hostile_names_render_as_text(self):
        self.env = Env(["/bin/sh", "-c", "case \"$1\" in *.png) echo \"<script>alert('stderr')</script> $1\" >&2; "
                        "exit 65;; esac", "sh", "{name}"])
        for name in HOSTILE:
            self.env.drop(name)  # the second is a file "script>.png" in a directory "\"';<"
        self.env.drop(b"caf\xe9.png")  # Latin-1: not UTF-8
        wait_for("all three failed", lambda: self.env.status()["failed"] == 3)
        b = self.browser
        for fragment in ("#/", "#/queue/q?state=failed"):
            self.open(fragment)
            wait_for("the names", lambda: all(n in b.find_element(By.ID, "view").text for n in HOSTILE))
            self.assert_no_dialog()
            self.assertEqual(b.find_elements(By.CSS_SELECTOR, "#view img, #view script"), [])
        # The name that is not UTF-8: readable, with its exact bytes beside.
        self.open("#/queue/q?state=failed&match=caf")
        self.assertIn("caf\ufffd.png", b.find_element(By.ID, "jobs").text)
        self.assertIn("bytes: 636166e92e706e67", b.find_element(By.ID, "jobs").text)
        for job in self.env.ctl("list", "q", "--state", "failed", "--json")["jobs"]:
            self.open("#/job/" + job["id"])
            self.assertEqual(b.find_element(By.ID, "job-name").text, job["name"])
            self.assertIn("<script>alert('stderr')</script>", b.find_element(By.ID, "stderr").text)
            self.assert_no_dialog()
            self.assertEqual(b.find_elements(By.CSS_SELECTOR, "#view img, #view script"), [])
        # And a search for them.
        self.open("#/queue/q?state=failed&match=%3Cimg")
        self.assertEqual(b.find_element(By.ID, "total").get_attribute("data-total"), "1")
        self.assert_no_dialog()
        # The responses carry a strict Content-Security-Policy.
        with urllib.request.urlopen(self.env.base + "/") as r:
            csp = r.headers["Content-Security-Policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertNotIn("unsafe-inline", csp)

    def test_foreign_host_and_origin_are_refused(self):
        self.env = Env(["/bin/true"])
        code, reply = self.env.request("/api/overview", headers={"Host": "evil.example:%d" % self.env.port})
        self.assertEqual(code, 403, reply)
        code, _ = self.env.request("/", headers={"Host": "evil.example"})
        self.assertEqual(code, 403)
        code, _ = self.env.request("/api/overview", headers={"Host": "localhost:%d" % self.env.port})
        self.assertEqual(code, 200)
        auth = {"Authorization": "Bearer " + TOKEN}
        code, reply = self.env.request("/api/queues/q/pause", "POST", {},
                                       dict(auth, Origin="http://evil.example"))
        self.assertEqual(code, 403, reply)
        code, reply = self.env.request("/api/queues/q/pause", "POST", {},
                                       dict(auth, Origin="null"))
        self.assertEqual(code, 403, reply)
        self.assertFalse(self.env.status()["paused"])
        code, reply = self.env.request("/api/queues/q/pause", "POST", {},
                                       dict(auth, Origin=self.env.base))
        self.assertEqual(code, 200, reply)
        self.assertTrue(self.env.status()["paused"])
        log = read(self.env.web_log)
        self.assertIn("console.refused reason=host host=evil.example", log)
        self.assertIn("console.refused reason=origin origin=http://evil.example", log)

    def test_tls_and_the_listen_rules(self):
        self.env = Env(["/bin/true"])
        cert = os.path.join(self.env.tmp, "cert.pem")
        key = os.path.join(self.env.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        log = os.path.join(self.env.tmp, "tls.log")
        with open(log, "w") as f:
            tls = subprocess.Popen([DROPQ_WEB, "-c", self.env.config_path, "--listen", "127.0.0.1:0",
                                    "--tls-cert", cert, "--tls-key", key],
                                   stdout=subprocess.DEVNULL, stderr=f)
        try:
            port = wait_for("the TLS console", lambda: "port=" in read(log) and
                            read(log).split("port=")[1].split()[0], timeout=15)
            self.assertIn("tls=yes", read(log))
            ctx = ssl.create_default_context(cafile=cert)
            with urllib.request.urlopen("https://127.0.0.1:%s/api/overview" % port, context=ctx,
                                        timeout=10) as r:
                self.assertEqual(json.loads(r.read())["redis"], "up")
            # Plain HTTP to it gets nothing.
            with self.assertRaises(Exception):
                urllib.request.urlopen("http://127.0.0.1:%s/api/overview" % port, timeout=5).read()
        finally:
            tls.terminate()
            self.assertEqual(tls.wait(timeout=10), 0)

        def run(*args):
            return subprocess.run([DROPQ_WEB, "-c", self.env.config_path] + list(args),
                                  capture_output=True, text=True, timeout=10)
        # Beyond loopback without TLS: refused, saying what to do.
        r = run("--listen", "0.0.0.0:0", "--allow-host", "console.example.com")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("--behind-tls-proxy", r.stderr)
        self.assertEqual(run("--listen", "0.0.0.0:0", "--tls-cert", cert).returncode, 64)
        # All addresses, but no name to be reached by: every request would be refused.
        r = run("--listen", "0.0.0.0:0", "--behind-tls-proxy")
        self.assertEqual(r.returncode, 64, r.stderr)
        self.assertIn("--allow-host", r.stderr)
        self.assertEqual(run("--listen", "nonsense").returncode, 64)
        r = run("--listen", "127.0.0.1:0", "--tls-cert", key, "--tls-key", cert)
        self.assertEqual(r.returncode, 69, r.stderr)
        short = os.path.join(self.env.tmp, "short-token")
        with open(short, "w") as f:
            f.write("short\n")
        r = run("--token-file", short)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("at least 16 characters", r.stderr)
        # Behind a TLS proxy, with its public name allowed.
        log = os.path.join(self.env.tmp, "proxy.log")
        with open(log, "w") as f:
            proxied = subprocess.Popen([DROPQ_WEB, "-c", self.env.config_path, "--listen",
                                        "0.0.0.0:0", "--behind-tls-proxy", "--allow-host",
                                        "console.example.com"],
                                       stdout=subprocess.DEVNULL, stderr=f)
        try:
            port = wait_for("the proxied console", lambda: "port=" in read(log) and
                            read(log).split("port=")[1].split()[0], timeout=15)
            url = "http://127.0.0.1:%s/api/session" % port
            req = urllib.request.Request(url, headers={"Host": "console.example.com"})
            with urllib.request.urlopen(req, timeout=10) as r:
                self.assertEqual(r.status, 200)
            with self.assertRaises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url, timeout=10)  # Host 127.0.0.1: not one of its names
            self.assertEqual(refused.exception.code, 403)
        finally:
            proxied.terminate()
            proxied.wait(timeout=10)

    def test_survives_a_redis_restart_and_only_reads(self):
        self.env = Env(["/bin/sh", "-c", "case \"$1\" in *.bad) exit 65;; esac", "sh", "{name}"])
        for i in range(20):
            self.env.drop("x%02d.%s" % (i, "bad" if i % 4 == 0 else "ok"))
        wait_for("20 jobs", lambda: self.env.status()["done"] + self.env.status()["failed"] == 20)
        # Every command the console sends while it is browsed: reads only.
        monitor_out = os.path.join(self.env.tmp, "monitor")
        with open(monitor_out, "w") as out:
            monitor = subprocess.Popen(["redis-cli", "-p", str(self.env.redis.port), "MONITOR"],
                                       stdout=out)
        time.sleep(0.3)
        self.open()
        job = self.env.ctl("list", "q", "--state", "failed", "--json")["jobs"][0]["id"]
        for fragment in ("#/queue/q?state=failed", "#/queue/q?state=done&match=x1",
                         "#/queue/q?state=failed&error=exit&since=1h", "#/queue/q?state=pending",
                         "#/job/" + job, "#/"):
            self.open(fragment)
        time.sleep(1.5)
        clients = self.env.redis.cli("CLIENT", "LIST")
        addrs = [part.split("=", 1)[1] for line in clients.splitlines() if "name=dropq-web" in line
                 for part in line.split() if part.startswith("addr=")]
        # One connection per request served at once, kept for the next ones.
        self.assertGreaterEqual(len(addrs), 1, clients)
        self.assertLessEqual(len(addrs), 4, clients)
        monitor.terminate()
        monitor.wait()
        reads = {"GET", "LLEN", "ZCARD", "HGET", "HMGET", "HGETALL", "TYPE", "PTTL", "LINDEX",
                 "SMEMBERS", "TIME", "ZREVRANGE", "ZRANGE", "ZCOUNT", "LRANGE",
                 "EXISTS", "CLIENT"}
        sent = set()
        for line in read(monitor_out).splitlines():
            if any("[0 %s]" % addr in line for addr in addrs):
                sent.add(line.split("]", 1)[1].split()[0].strip('"').upper())
        self.assertTrue(sent, "the console's calls were not seen")
        self.assertTrue(sent <= reads, sent - reads)

        # Redis goes away: the page says so, and comes back with it.
        self.open()
        self.env.redis.stop()
        b = self.browser
        wait_for("Redis unreachable", lambda: b.find_element(By.ID, "redis-status").text == "Redis unreachable")
        self.assertIn("Redis unreachable", b.find_element(By.ID, "banner").text)
        code, reply = self.env.request("/api/overview")
        self.assertEqual(code, 503, reply)
        self.env.redis.start()
        wait_for("Redis up", lambda: b.find_element(By.ID, "redis-status").text == "Redis up", timeout=30)
        wait_for("the counts again", lambda: self.cell("failed") == "5", timeout=30)
        self.assertTrue(b.find_element(By.ID, "banner").get_attribute("hidden"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
