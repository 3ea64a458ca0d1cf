// Package entry for asc, which resolves "@extedge/guest" to this file.
export * from "./assembly/index";
