"""Runs moto's DynamoDB emulator single-threaded (DESIGN.md): the stock multi-threaded server
loses concurrent updates, which would make concurrency tests lie. The dev server opens one
connection per request, so the listen backlog is raised: hundreds of concurrent test writers
then queue in the kernel instead of timing out on connect."""
import sys

import werkzeug.serving
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

werkzeug.serving.BaseWSGIServer.request_queue_size = 4096

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
app = DomainDispatcherApplication(create_backend_app)
werkzeug.serving.run_simple(host, port, app, threaded=False, use_reloader=False, use_debugger=False)
