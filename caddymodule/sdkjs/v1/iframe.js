// extedge JS SDK (iframe side) — placeholder until sdk/js/iframe.js is written.
// Served by the gateway at /ext-sdk/v1/iframe.js.
export const version = "0.0.0-placeholder";
