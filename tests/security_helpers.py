"""Small HTTP helpers shared by the security tests: sign-up, sign-in, and the browser's headers."""

from __future__ import annotations

import json

import requests
from fixtures import SIMULATOR_AUTH, LiveServer

API_HEADERS = {"Authorization": SIMULATOR_AUTH, "Content-Type": "application/json"}
# What a browser adds to a request that another site's page makes it send.
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Origin": "https://evil.example"}


def sign_up(server: LiveServer, username: str, password: str = "secret", **fields: str) -> requests.Response:
    data = {"username": username, "email": f"{username}@example.com", "password": password,
            "password2": password} | fields
    return server.post("/register", data=data)


def sign_in(server: LiveServer, username: str, password: str = "secret") -> tuple[requests.Response, requests.Session]:
    session = requests.Session()
    response = session.post(server.url + "/login", data={"username": username, "password": password}, timeout=10)
    return response, session


def signed_in(server: LiveServer, username: str) -> requests.Session:
    assert "You were successfully registered" in sign_up(server, username).text
    response, session = sign_in(server, username)
    assert "You were logged in" in response.text
    return session


def api_register(server: LiveServer, username: str, **fields: str) -> requests.Response:
    body = {"username": username, "email": f"{username}@example.com", "pwd": "secret"} | fields
    return server.post("/register", data=json.dumps(body), headers=API_HEADERS)


def api_tweet(server: LiveServer, username: str, content: str) -> requests.Response:
    return server.post(f"/msgs/{username}", data=json.dumps({"content": content}), headers=API_HEADERS)


class FromAddress(requests.adapters.HTTPAdapter):
    """Connects from a given loopback address (127.0.0.2, 127.0.0.3...), so that one test can
    play clients on several addresses against a server on 127.0.0.1."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]


def client_from(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    session.mount("https://", FromAddress(address))  # through the edge (sim_tests/test_edge.py)
    return session


def sign_in_from(server: LiveServer, address: str, username: str, password: str = "secret") -> requests.Response:
    data = {"username": username, "password": password}
    return client_from(address).post(server.url + "/login", data=data, timeout=10)
