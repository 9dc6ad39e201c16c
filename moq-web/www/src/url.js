/**
 * Session URLs: a relay takes the path of the WebTransport URL as the session's
 * root (the paths the session names are relative to it) and its `jwt` query
 * parameter as the session's access token: `https://relay:4443/ROOT?jwt=TOKEN`.
 * A token is a credential, so texts shown to people have it redacted.
 */
/**
 * `url` with its path replaced by `root` and its `jwt` query parameter set to
 * `jwt`. Empty path parts are dropped (`/a//b/` is the root `a/b`, as the relay
 * reads it) and each part is percent-encoded.
 *
 * ```ts
 * sessionUrl("https://relay:4443/", { root: "room", jwt: "eyJ.x.y" })
 * // "https://relay:4443/room?jwt=eyJ.x.y"
 * ```
 */
export function sessionUrl(url, parts = {}) {
    const u = new URL(String(url));
    if (parts.root !== undefined && parts.root.trim() !== "") {
        const segments = parts.root
            .split("/")
            .map((part) => part.trim())
            .filter((part) => part !== "");
        u.pathname = "/" + segments.map(encodeURIComponent).join("/");
    }
    if (parts.jwt !== undefined && parts.jwt.trim() !== "")
        u.searchParams.set("jwt", parts.jwt.trim());
    return u.toString();
}
/**
 * `url` without its `jwt` query parameter, and that token (`undefined` when the
 * URL has none or an empty one): to show a URL while keeping its token apart.
 */
export function splitToken(url) {
    const u = new URL(String(url));
    const jwt = u.searchParams.get("jwt") ?? "";
    if (!u.searchParams.has("jwt"))
        return { url: u.toString(), jwt: undefined };
    u.searchParams.delete("jwt");
    return { url: u.toString(), jwt: jwt !== "" ? jwt : undefined };
}
/**
 * `text` with the value of every `jwt=` query parameter in it replaced by
 * `<redacted>` (the form the relay and the `moq` tool log URLs in). Works on any
 * text, e.g. an error message that quotes a URL; a value runs to the next `&`,
 * `#`, whitespace or quote, so nothing of a token is left.
 */
export function redactUrl(text) {
    return text.replace(/([?&]jwt=)[^&#\s"']*/gi, "$1<redacted>");
}
