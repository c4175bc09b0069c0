"""The guard's commands end to end: accounts, tokens, review, report, complaint, purge,
audit verify and checkpoint, transparency, key rotation; no --actor/--role anywhere."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
from test_guard_common import CANARY

from classifier._cli import main, sample_path
from classifier.guard import Keys

pytestmark = pytest.mark.obligation("art3-1-g-ii", "art3-1-g-iv", "audit-log")


@pytest.fixture
def env(tmp_path, monkeypatch, quick_argon2):
    key = tmp_path / "master.key"
    key.write_text(Keys.generate() + "\n")
    key.chmod(0o600)
    monkeypatch.setenv("SOLICITATION_MASTER_KEY_FILE", str(key))
    monkeypatch.delenv("SOLICITATION_MASTER_KEY", raising=False)
    monkeypatch.delenv("SOLICITATION_TOKEN", raising=False)
    monkeypatch.delenv("SOLICITATION_KEY_STORE", raising=False)
    monkeypatch.delenv("SOLICITATION_AUDIT_KEY_FILE", raising=False)
    return tmp_path


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def add(capsys, url, name, role, monkeypatch):
    """An account added by the operator; its holder signs in once from standard input
    (replacing the issued password) and makes their own token."""
    import io

    import pyotp

    code, out, _ = run(capsys, "users", "add", name, "--role", role, "--json", "--store", url)
    e = json.loads(out)
    assert code == 0 and e["password"] and bool(e["totp_secret"]) == (role != "auditor")
    code, token, err = run(capsys, "users", "token", name, "--store", url)
    if role != "auditor":  # the operator cannot make a reviewer's or supervisor's token
        assert code == 1 and "[G141]" in err
    else:  # an auditor's, made by the operator, waits for the password change too
        code, _, err = run(capsys, "audit", "summary", "--store", url, "--token", token.strip())
        assert code == 1 and "[G134]" in err
    totp = pyotp.TOTP(e["totp_secret"]).now() if e["totp_secret"] else ""
    monkeypatch.setattr("sys.stdin", io.StringIO(
        f"{name}\n{e['password']}\n{totp}\na long new passphrase\n"))
    code, token, err = run(capsys, "users", "sign-in", "--stdin", "--store", url)
    assert code == 0, err
    return token.strip()


def test_cli_review_report_complaint_purge_audit_transparency(env, capsys, monkeypatch):
    url = f"sqlite:///{env / 'q.db'}"
    code, _, err = run(capsys, "score", str(sample_path()), "-o", str(env / "s.jsonl"),
                       "--queue", url)
    assert code == 0 and "1 case opened for human review" in err
    assert oct((env / "q.db").stat().st_mode & 0o777) == "0o600"
    ann, bob, cat, eve = (add(capsys, url, name, role, monkeypatch) for name, role in (
        ("Ann", "reviewer"), ("bob", "reviewer"), ("cat", "supervisor"), ("eve", "auditor")))
    code, _, err = run(capsys, "users", "add", "ANN ", "--role", "supervisor", "--store", url)
    assert code == 1 and "[G132]" in err  # the same person, whatever the spelling
    code, out, _ = run(capsys, "users", "list", "--store", url)
    assert "ann\treviewer\tactive" in out and "sct_" not in out
    # no sign-in, no action; the role comes from the account
    code, _, err = run(capsys, "review", "list", "--store", url)
    assert code == 1 and "[G139]" in err
    code, _, err = run(capsys, "review", "list", "--store", url, "--role", "supervisor")
    assert code == 2  # --role is gone
    code, out, _ = run(capsys, "review", "list", "--store", url, "--token", ann)
    case_id = out.split()[0]
    code, _, err = run(capsys, "review", "list", "--store", url, "--token", eve)
    assert code == 1 and "[G107]" in err
    code, _, err = run(capsys, "review", "list", "--store", url, "--token", ann + "x")
    assert code == 1 and "[G131]" in err
    monkeypatch.setenv("SOLICITATION_TOKEN", ann)
    assert run(capsys, "review", "claim", case_id, "--store", url)[0] == 0
    monkeypatch.delenv("SOLICITATION_TOKEN")
    assert run(capsys, "review", "claim", case_id, "--store", url, "--token", bob)[0] == 1
    code, _, err = run(capsys, "review", "decide", case_id, "confirm", "--reason",
                       "solicitation_of_a_child", "--store", url, "--token", ann)
    assert code == 1 and "[G113]" in err
    code, out, _ = run(capsys, "review", "show", case_id, "--store", url, "--token", ann)
    assert code == 0 and json.loads(out)["messages"]
    assert run(capsys, "review", "decide", case_id, "confirm", "--reason",
               "solicitation_of_a_child", "--store", url, "--token", ann)[0] == 0
    report = env / "report.json"
    code, _, err = run(capsys, "report", "export", case_id, "-o", str(report), "--store", url,
                       "--token", ann)
    assert code == 1 and "[G107]" in err
    code, out, _ = run(capsys, "complaint", "lodge", case_id, "--channel", "in_app",
                       "--store", url, "--token", cat)
    complaint = out.strip()
    code, _, err = run(capsys, "report", "export", case_id, "-o", str(report), "--store", url,
                       "--token", cat)
    assert code == 1 and "[G114]" in err and not report.exists()
    assert run(capsys, "complaint", "show", complaint, "--store", url, "--token", bob)[0] == 0
    assert run(capsys, "complaint", "review", complaint, "confirm", "--store", url,
               "--token", bob)[0] == 0
    code, out, _ = run(capsys, "complaint", "decide", complaint, "--store", url, "--token", cat)
    assert out.strip() == "rejected"
    assert run(capsys, "report", "export", case_id, "-o", str(report), "--store", url,
               "--token", cat)[0] == 0
    assert oct(report.stat().st_mode & 0o777) == "0o600"
    assert json.loads(report.read_text())["annotations"]["human_reviewed_content"] is True
    # purge with the audit key alone
    audit_key = env / "audit.key"
    assert run(capsys, "keys", "audit-key", "-o", str(audit_key), "--store", url)[0] == 0
    assert oct(audit_key.stat().st_mode & 0o777) == "0o600"
    monkeypatch.delenv("SOLICITATION_MASTER_KEY_FILE")
    assert run(capsys, "purge", "--store", url, "--audit-key-file", str(audit_key))[0] == 0
    code, _, err = run(capsys, "purge", "--store", url)
    assert code == 1 and "[G012]" in err
    # checkpoints: signed outside the database, checked by an auditor with the public key
    signing = env / "ckpt.key"
    assert run(capsys, "audit", "keygen", "-o", str(signing))[0] == 0
    assert oct(signing.stat().st_mode & 0o777) == "0o600"
    head = env / "head.json"
    assert run(capsys, "audit", "checkpoint", "--signing-key", str(signing), "-o", str(head),
               "--store", url, "--audit-key-file", str(audit_key))[0] == 0
    code, _, err = run(capsys, "audit", "verify", "--store", url, "--checkpoint", str(head),
                       "--public-key", f"{signing}.pub")
    assert code == 0 and "MACs: NOT checked" in err and "signature valid, matches" in err
    code, _, err = run(capsys, "audit", "verify", "--store", url, "--audit-key-file",
                       str(audit_key), "--checkpoint", str(head))
    assert code == 0 and "MACs: checked" in err and "signature not checked" in err
    code, _, err = run(capsys, "audit", "verify", "--store", url, "--checkpoint",
                       str(env / "nope.json"), "--public-key", f"{signing}.pub")
    assert code == 1 and "[G145]" in err and "does not exist" in err
    code, out, _ = run(capsys, "audit", "summary", "--store", url, "--audit-key-file",
                       str(audit_key), "--token", eve)
    assert json.loads(out)["cases_by_status"] == {"reported": 1}
    assert case_id not in out and CANARY not in out
    year = str(datetime.now(UTC).year)
    assert run(capsys, "transparency", "--year", year, "-o", str(env / "tr"), "--store", url,
               "--organisation", "NCMEC", "--token", eve, "--audit-key-file",
               str(audit_key))[0] == 0
    data = json.loads((env / "tr.json").read_text())
    assert data["cases"]["reported"] == 1 and data["complaints"]["rejected"] == 1
    assert data["data_processed"]["bytes_of_text_scanned_eu"] > 0  # metered by score
    code, _, err = run(capsys, "transparency", "--year", year, "-o", str(env / "tr2"),
                       "--store", url, "--token", ann, "--audit-key-file", str(audit_key))
    assert code == 1 and "[G107]" in err


def test_cli_wrong_key_is_refused_before_anything_is_written(env, capsys, monkeypatch):
    url = f"sqlite:///{env / 'q.db'}"
    assert run(capsys, "score", str(sample_path()), "-o", str(env / "s.jsonl"),
               "--queue", url)[0] == 0
    before = (env / "q.db").read_bytes(), sorted(os.listdir(env / "q.db.keys"))
    monkeypatch.setenv("SOLICITATION_MASTER_KEY", Keys.generate())
    monkeypatch.delenv("SOLICITATION_MASTER_KEY_FILE")
    code, _, err = run(capsys, "score", str(sample_path()), "-o", str(env / "t.jsonl"),
                       "--queue", url)
    assert code == 1 and "[G004]" in err and "Traceback" not in err
    after = (env / "q.db").read_bytes(), sorted(os.listdir(env / "q.db.keys"))
    assert before == after


def test_cli_dismissal_disable_reset_and_rotation(env, capsys, monkeypatch):
    url = f"sqlite:///{env / 'q.db'}"
    assert run(capsys, "score", str(sample_path()), "-o", str(env / "s.jsonl"),
               "--queue", url)[0] == 0
    ann = add(capsys, url, "ann", "reviewer", monkeypatch)
    case_id = run(capsys, "review", "list", "--store", url, "--token", ann)[1].split()[0]
    assert run(capsys, "review", "claim", case_id, "--store", url, "--token", ann)[0] == 0
    assert run(capsys, "review", "release", case_id, "--store", url, "--token", ann)[0] == 0
    new_key = env / "new.key"
    new_key.write_text(Keys.generate())
    new_key.chmod(0o600)
    code, _, err = run(capsys, "keys", "rotate", "--new-master-key-file", str(new_key),
                       "--store", url)
    assert code == 0 and "2 keys rewrapped" in err  # the case's key and the store secret
    code, _, err = run(capsys, "review", "claim", case_id, "--store", url, "--token", ann)
    assert code == 1 and "[G004]" in err  # the old key is refused now
    monkeypatch.setenv("SOLICITATION_MASTER_KEY_FILE", str(new_key))
    assert run(capsys, "review", "claim", case_id, "--store", url, "--token", ann)[0] == 0
    code, out, _ = run(capsys, "review", "show", case_id, "--store", url, "--token", ann)
    assert code == 0 and json.loads(out)["messages"]  # readable under the new key
    assert run(capsys, "review", "decide", case_id, "dismiss", "--reason",
               "peer_conversation", "--store", url, "--token", ann)[0] == 0
    assert run(capsys, "users", "disable", "ann", "--store", url)[0] == 0
    code, _, err = run(capsys, "review", "list", "--store", url, "--token", ann)
    assert code == 1 and "[G131]" in err
    code, out, _ = run(capsys, "users", "reset", "ann", "--store", url)
    assert code == 0 and "otpauth://totp/" in out
    code, _, err = run(capsys, "audit", "verify", "--store", url)
    assert code == 0 and "audit log intact" in err


def test_cli_interactive_sign_in_on_a_terminal(env, tmp_path):
    """On a terminal without a token the command asks for account, password and TOTP
    code, and for a new password the first time (a real pseudo-terminal)."""
    import pty
    import subprocess
    import sys
    import time

    import pyotp

    from classifier.guard import Guard, Store

    url = f"sqlite:///{env / 'tty.db'}"
    guard = Guard(Store(url, create=True), Keys.load())
    enrolment = guard.add_account("Ann", "reviewer")
    guard.store.engine.dispose()
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "classifier._cli", "review", "list",
                             "--store", url], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, env={**os.environ})
    os.close(slave)
    seen = b""

    def answer(prompt: bytes, reply: str) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while prompt not in seen and time.monotonic() < deadline:
            seen += os.read(master, 1024)
        assert prompt in seen, seen
        seen = seen[seen.index(prompt) + len(prompt):]
        os.write(master, reply.encode() + b"\n")

    answer(b"account: ", " ANN ")
    answer(b"password: ", enrolment.password)
    answer(b"TOTP code", pyotp.TOTP(enrolment.totp_secret).now())
    answer(b"new password: ", "a long new passphrase")
    assert proc.wait(timeout=60) == 0
    os.close(master)
    with guard.store.engine.connect() as conn:
        from sqlalchemy import select

        from classifier.guard._store import audit_log

        done = [a for (a,) in conn.execute(select(audit_log.c.action))]
    assert "signed_in" in done and "password_changed" in done
