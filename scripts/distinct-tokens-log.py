#!/usr/bin/env python3
"""Write an access log of N distinct session tokens, one request each, 2 ms apart, on the
synthetic GeoIP world of `tokenwatch simulate`: for measuring memory under a flood of tokens
(BENCHMARKS.md, "Memory under a flood of distinct tokens").

usage: distinct-tokens-log.py N OUT.jsonl [--jwt CONFIG.toml]

Without --jwt the tokens are opaque session cookies. With --jwt they are HS256 JWTs (one user
and login session each, UUID-sized sub/sid/jti) signed with the first key of CONFIG.toml (the
generated test config `tokenwatch simulate` writes next to its log).
"""
import base64
import hashlib
import hmac
import json
import sys
import tomllib

T0_MS = 1_795_435_200_000  # 2026-11-23T12:00:00Z
CITIES = 100  # the synthetic world has more; these are enough
FIRST_OCTET = {"residential": 11, "mobile": 21}
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
]


def address(city, kind, host):
    """geodb::address: <octet>.<city << 14 within a /18>.<host>"""
    value = (FIRST_OCTET[kind] << 24) | (city << 14) | (1 + host % 16000)
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0))


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_maker(config_path):
    with open(config_path, "rb") as f:
        config = tomllib.load(f)
    jwt = config["tokens"]["jwt"]
    key = jwt["keys"][0]
    secret = key["secret"].encode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key["kid"]}).encode())
    iat = T0_MS // 1000

    def make(n):
        uuid = lambda kind: f"{n:08x}-{kind:04x}-4000-8000-{n:012x}"
        payload = b64(json.dumps({
            "iss": jwt["issuers"][0], "aud": jwt["audiences"][0], "sub": uuid(1),
            "sid": uuid(2), "jti": uuid(3), "iat": iat, "exp": iat + 12 * 3600,
        }, separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(signature)}"

    return make


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    jwt = jwt_maker(sys.argv[4]) if sys.argv[3:4] == ["--jwt"] else None
    with open(out, "w") as f:
        for i in range(n):
            kind = "mobile" if i % 3 == 0 else "residential"
            record = {
                "time": T0_MS + 2 * i,
                "client_ip": address((i * 7) % CITIES, kind, i),
                "method": "GET",
                "path": "/api/items",
                "status": 200,
                "user_agent": UAS[i % 2],
            }
            if jwt:
                record["authorization"] = f"Bearer {jwt(i)}"
            else:
                record["cookie"] = f"theme=dark; sid=s{i:031x}"
            f.write(json.dumps(record, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
