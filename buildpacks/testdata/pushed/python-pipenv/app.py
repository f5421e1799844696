"""A Flask app, served by gunicorn (app:app)."""
import os
import sys

import flask

app = flask.Flask(__name__)


@app.route("/")
def hello():
    try:
        import packaging  # noqa: F401  (a dev dependency of the locked apps)
        dev = "present"
    except ImportError:
        dev = "absent"
    return f"hello from flask {flask.__version__} on python {sys.version.split()[0]}; packaging {dev}; venv {os.environ.get('VIRTUAL_ENV')}\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "5000")))
