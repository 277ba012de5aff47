import type { Route } from "../config/types.js";

const CHAT_COMPLETIONS = "/chat/completions";

/**
 * The path (with query) to request on `route.origin` for a client request to
 * `pathname` + `search`. `pathname` must already be normalised (no `..`), which
 * the server guarantees by parsing the target with WHATWG URL rules; the origin
 * always comes from the route, never from the request.
 *
 * - `isBaseUrl: true`: the route URL is a base and the request path is appended;
 *   a base ending in `/v1` does not get a second `/v1`.
 * - `isBaseUrl: false` (1.0.0's default): the route URL is the full endpoint. A
 *   request for another `/v1/*` path on a route whose URL ends in
 *   `/chat/completions` is sent to the sibling path instead, so embeddings or
 *   models calls do not land on the chat endpoint.
 */
export function upstreamPath(route: Route, pathname: string, search: string): string {
  let path: string;
  if (route.isBaseUrl) {
    const rest = route.basePath.endsWith("/v1") && (pathname === "/v1" || pathname.startsWith("/v1/")) ? pathname.slice(3) : pathname;
    path = route.basePath + rest;
  } else if (route.basePath.endsWith(CHAT_COMPLETIONS) && pathname !== "/v1" + CHAT_COMPLETIONS && pathname.startsWith("/v1/")) {
    path = route.basePath.slice(0, -CHAT_COMPLETIONS.length) + pathname.slice(3);
  } else {
    path = route.basePath;
  }
  if (path === "") path = "/";
  const query = joinQuery(route.baseQuery, search.startsWith("?") ? search.slice(1) : search);
  return query ? `${path}?${query}` : path;
}

function joinQuery(routeQuery: string, requestQuery: string): string {
  if (!routeQuery) return requestQuery;
  if (!requestQuery) return routeQuery;
  return `${routeQuery}&${requestQuery}`;
}
