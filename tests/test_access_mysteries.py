"""The two mysteries of notebook 09, on real brokers: the silent dashboard (a reading the policy keeps away,
which arrives once the dashboard's rule is granted) and the device whose certificate is not its key's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import require_program

from mqtt_pki_lab import acl
from mqtt_pki_lab.access_mysteries import DEVICE, READING, device_mystery_folder, open_device_mystery, watch
from mqtt_pki_lab.steps import Lab


@pytest.fixture
def fleet(lab_copy: Path) -> Lab:
    lab = Lab(lab_copy)
    lab.add_client("sensor-2")
    return lab


@pytest.mark.parametrize("broker", ["embedded", "mosquitto"])
def test_the_dashboard_hears_nothing_until_its_rule_is_granted(fleet: Lab, broker: str) -> None:
    if broker == "mosquitto":
        require_program("mosquitto", "apt-get install mosquitto")
    before = watch(fleet, broker=broker)
    text = str(before)
    assert not before.arrived and "nothing in 1.0 s" in text
    assert "CONNACK: Success" in before.connected and before.suback == "granted QoS 1"
    assert "PUBACK received" in before.published
    assert "acl" not in text and "policy" not in text, "the evidence must not give the answer away"
    acl.grant(fleet, "client", "devices/+/temperature", "read")
    after = watch(fleet, broker=broker)
    assert after.received == (READING,), str(after)


def test_the_device_mystery_shows_the_mismatch_and_never_the_answer(fleet: Lab) -> None:
    case = open_device_mystery(fleet)
    folder = device_mystery_folder()
    assert case.files == ("ca.crt", "client.crt", "client.csr", "client.key")
    text = str(case)
    assert "KEY_VALUES_MISMATCH" in text and "sensor-2" not in text and "wrong" not in text
    cert, key = case.inspect("client.crt"), case.inspect("client.key")
    assert ("subject", "CN=sensor-2,O=mqtt-pki-lab") in cert.rows
    fingerprint = dict(key.rows)["key fingerprint"]
    assert fingerprint != dict(cert.rows)["key fingerprint"]
    assert "PRIVATE KEY" not in str(key) and "permissions" in dict(key.rows)
    assert "No file" in case.inspect("server.crt")
    # made once, then reused: the device's key stays the same
    again = open_device_mystery(fleet)
    assert dict(again.inspect("client.key").rows)["key fingerprint"] == fingerprint
    # a folder left half-made (killed before the copy) is made again
    (folder / "client.crt").unlink()
    open_device_mystery(fleet)
    assert (folder / "client.crt").exists() and DEVICE not in str(case.inspect("client.crt"))
    shutil.rmtree(folder)
