# A receiver of icbridge's events: pip install standardwebhooks; ICB_EVENTS_SECRET=whsec_… python3 receiver.py
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks.webhooks import Webhook

webhook = Webhook(os.environ["ICB_EVENTS_SECRET"])

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        try:
            event = webhook.verify(body, dict(self.headers))  # the signature and the timestamp
        except Exception:
            return self.send_error(401)
        print(self.headers["webhook-id"], event["type"], event["data"], flush=True)
        self.send_response(204)
        self.end_headers()

HTTPServer(("127.0.0.1", 9000), Receiver).serve_forever()
