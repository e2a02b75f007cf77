"""A remote hcore plugin in Python, written from docs/PROTOCOL.md with paho-mqtt only.

Provides <id>.target {"celsius": number} (thermostat.target), records the target with
the kernel's state.set and publishes the event <id>/target_set. Usage: python3 thermostat.py [host] [port]   (pip install paho-mqtt)
Run by a plugin host, it takes its id, the hub and its credential from HCORE_ID and
HCORE_URL (mqtt://user:password@host:port?keep_alive=N). SIGTERM stops it cleanly.
"""
import json, os, signal, sys, time, uuid
from urllib.parse import urlsplit, parse_qs, unquote
import paho.mqtt.client as mqtt

URL = urlsplit(os.environ.get("HCORE_URL", ""))
HOST = URL.hostname or (sys.argv[1:] + ["127.0.0.1"])[0]
PORT = URL.port or int((sys.argv[2:] + ["1883"])[0])
KEEPALIVE = int(parse_qs(URL.query).get("keep_alive", ["30"])[0])
ME, ROOT, SESSION = os.environ.get("HCORE_ID", "thermostat"), "hc", int(time.time() * 1000)
STATUS = f"{ROOT}/plugin/{ME}/status"
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ME)
if URL.username:
    client.username_pw_set(unquote(URL.username), unquote(URL.password or ""))
client.will_set(STATUS, json.dumps({"state": "offline", "session": SESSION}), qos=1, retain=True)

SHARED = f"$share/{ME}.target/{ROOT}/call/+/{ME}/target"
routing = {"shared": False}  # holding the shared subscription?

def on_connect(c, userdata, flags, reason, props):
    routing["shared"] = False
    # Calls come through the broker's shared subscription, or, when the kernel status says
    # "calls": "kernel" (a broker without $share, such as NATS), on our delivery topic.
    c.subscribe(f"{ROOT}/deliver/{ME}/{ME}/#", qos=0)
    c.subscribe(f"{ROOT}/kernel/status", qos=1)
    c.subscribe(f"{ROOT}/reply/{ME}", qos=1)  # replies to our own calls
    c.publish(f"{ROOT}/plugin/{ME}/manifest", json.dumps({"version": "1.0.0", "services": [f"{ME}.target"]}), 1, True)
    c.publish(STATUS, json.dumps({"state": "online", "session": SESSION, "ts": int(time.time() * 1000)}), 1, True)

def on_disconnect(c, userdata, flags, reason, props):
    # Every connection gets a larger session number, and a will that carries it.
    global SESSION
    SESSION = int(time.time() * 1000)
    c.will_set(STATUS, json.dumps({"state": "offline", "session": SESSION}), qos=1, retain=True)

def on_term(signum, frame):
    # A clean stop: say offline (the will only fires when the connection is lost), then go.
    client.publish(STATUS, json.dumps({"state": "offline", "session": SESSION}), qos=1, retain=True)
    client.disconnect()

def follow_kernel(c, payload):
    try:
        status = json.loads(payload)
    except ValueError:
        return
    if status.get("state") != "online":
        return
    shared = status.get("calls") != "kernel"
    if shared and not routing["shared"]:
        c.subscribe(SHARED, qos=1)
    elif not shared and routing["shared"]:
        c.unsubscribe(SHARED)
    routing["shared"] = shared

def on_message(c, userdata, msg):
    if msg.topic.startswith(f"{ROOT}/reply/"):
        print("kernel replied:", msg.payload.decode(), flush=True)
        return
    if msg.topic == f"{ROOT}/kernel/status":
        return follow_kernel(c, msg.payload)
    # hc/call/<caller>/... from the broker, hc/deliver/<me>/<client>/<caller>/... from the kernel
    levels = msg.topic.split("/")
    caller = levels[4] if levels[1] == "deliver" else levels[2]
    try:
        req = json.loads(msg.payload)
    except ValueError:
        req = {}
    celsius = (req.get("params") or {}).get("celsius")
    if req.get("deadline", float("inf")) < time.time() * 1000:
        answer = {"error": {"code": "timeout", "message": "request arrived after its deadline"}}
    elif isinstance(celsius, (int, float)) and not isinstance(celsius, bool):
        # What handling this request causes names it as parent.
        call = {"id": f"set-{req.get('id')}", "parent": req.get("id"), "params": {"key": f"{ME}/target", "value": celsius}}
        c.publish(f"{ROOT}/call/{ME}/state/set", json.dumps(call), qos=1)
        event = {"id": str(uuid.uuid4()), "parent": req.get("id"), "source": ME,
                 "ts": int(time.time() * 1000), "data": {"celsius": celsius}}
        c.publish(f"{ROOT}/event/{ME}/target_set", json.dumps(event), qos=1)
        answer = {"result": {"target": celsius}}
    else:
        answer = {"error": {"code": "bad_request", "message": "celsius must be a number"}}
    c.publish(req.get("reply_to") or f"{ROOT}/reply/{caller}", json.dumps({"id": req.get("id"), **answer}), qos=1)

client.on_connect, client.on_message, client.on_disconnect = on_connect, on_message, on_disconnect
signal.signal(signal.SIGTERM, on_term)
client.connect(HOST, PORT, keepalive=KEEPALIVE)
client.loop_forever()
