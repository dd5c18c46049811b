"""What each stable problem code means, as the API reference tells integrators. The codes and
their statuses are `app.edge.problems.STATUS_BY_CODE`; a test keeps the two alike."""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    "validation_error": (
        "The body, the query string or a field is malformed; `errors` lists the fields a "
        "schema refused."
    ),
    "invalid_code": "The pairing code, admin-app QR token or pairing id is not valid.",
    "code_expired": "The code or QR token has expired or was withdrawn; ask for a new one.",
    "code_already_used": "The code or QR token was already redeemed.",
    "invalid_proof": (
        "The `pairingProof` or `codeVerifier` does not match; the fifth wrong proof burns the "
        "pairing session."
    ),
    "session_burned": "Too many wrong proofs: the pairing session is closed.",
    "authorization_pending": "Waiting for the admin's approval; poll again after `interval`.",
    "slow_down": "Polled faster than `interval`; wait longer between polls.",
    "access_denied": "An admin rejected the device.",
    "expired_token": "The pairing session expired or was cancelled before it completed.",
    "invalid_credentials": (
        "Wrong email or password, unknown credentials, or a missing or invalid access token."
    ),
    "not_authenticated": "No console session or admin-app token, or the account is disabled.",
    "token_expired": "The credentials, access token or refresh token have expired.",
    "token_revoked": "The credentials or token were revoked, or a rotated-out one came back.",
    "forbidden": (
        "The role does not allow this, the CSRF token is missing or wrong, or only the "
        "console (or the admin who minted the code) may do it."
    ),
    "not_found": "No such resource.",
    "method_not_allowed": "The path does not take this method.",
    "conflict": "The resource changed, or its state does not allow this; reload and retry.",
    "idempotency_key_in_flight": (
        "The request that first sent this `Idempotency-Key` is still being answered; retry "
        "with the same key in a moment to get its answer."
    ),
    "idempotency_key_reuse": (
        "This `Idempotency-Key` came with a different request (method, path, caller or body); "
        "a new request needs a new key."
    ),
    "unsupported_media_type": "Send the body as `application/json`.",
    "payload_too_large": "The body is over the configured request size limit.",
    "rate_limited": "Too many attempts; wait `Retry-After` seconds.",
    "internal_error": "Something went wrong on the server; nothing more is disclosed.",
    "unavailable": "The database or Redis is unavailable; retry after `Retry-After` seconds.",
}
