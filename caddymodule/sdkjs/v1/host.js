// extedge JS SDK (host side) — placeholder until sdk/js/host.js is written.
// Served by the gateway at /ext-sdk/v1/host.js.
export const version = "0.0.0-placeholder";
