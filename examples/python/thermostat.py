"""A remote hcore plugin in Python, written from docs/PROTOCOL.md with paho-mqtt only.

Provides thermostat.target {"celsius": number} and records the target with the kernel's
state.set. Usage: python3 thermostat.py [host] [port]   (pip install paho-mqtt)
"""
import json, sys, time
import paho.mqtt.client as mqtt

HOST, PORT = (sys.argv[1:] + ["127.0.0.1"])[0], int((sys.argv[2:] + ["1883"])[0])
ME, ROOT, SESSION = "thermostat", "hc", int(time.time() * 1000)
STATUS = f"{ROOT}/plugin/{ME}/status"
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=ME)
client.will_set(STATUS, json.dumps({"state": "offline", "session": SESSION}), qos=1, retain=True)

def on_connect(c, userdata, flags, reason, props):
    c.subscribe(f"$share/thermostat.target/{ROOT}/call/+/thermostat/target", qos=1)
    c.subscribe(f"{ROOT}/reply/{ME}", qos=1)  # replies to our own calls
    c.publish(f"{ROOT}/plugin/{ME}/manifest", json.dumps({"version": "1.0.0", "services": ["thermostat.target"]}), 1, True)
    c.publish(STATUS, json.dumps({"state": "online", "session": SESSION, "ts": int(time.time() * 1000)}), 1, True)

def on_message(c, userdata, msg):
    if msg.topic.startswith(f"{ROOT}/reply/"):
        print("kernel replied:", msg.payload.decode(), flush=True)
        return
    caller = msg.topic.split("/")[2]
    try:
        req = json.loads(msg.payload)
    except ValueError:
        req = {}
    celsius = (req.get("params") or {}).get("celsius")
    if req.get("deadline", float("inf")) < time.time() * 1000:
        answer = {"error": {"code": "timeout", "message": "request arrived after its deadline"}}
    elif isinstance(celsius, (int, float)) and not isinstance(celsius, bool):
        # What handling this request causes names it as parent.
        call = {"id": f"set-{req.get('id')}", "parent": req.get("id"), "params": {"key": "thermostat/target", "value": celsius}}
        c.publish(f"{ROOT}/call/{ME}/state/set", json.dumps(call), qos=1)
        answer = {"result": {"target": celsius}}
    else:
        answer = {"error": {"code": "bad_request", "message": "celsius must be a number"}}
    c.publish(req.get("reply_to") or f"{ROOT}/reply/{caller}", json.dumps({"id": req.get("id"), **answer}), qos=1)

client.on_connect, client.on_message = on_connect, on_message
client.connect(HOST, PORT, keepalive=30)
client.loop_forever()
