// Package catalog knows the GPU instance types Hadron can provision on AWS and
// Alibaba Cloud, what they cost per hour and where they are offered, and
// turns a user's GPU requirements into offers, an ordered list of launch
// candidates and a budget check.
//
// The data comes from catalog.json, embedded in the binary: list prices as of
// a recorded date, with the rows that are approximations marked as such (see
// the file's sources and notes, and `make catalog` to refresh it). When cloud
// credentials are present, a Refiner merges live data (which zones offer a
// type now, current spot prices) over the embedded data, cached for the run
// and bounded in time; when live calls fail the embedded data still answers
// and a warning says so.
//
// The package is pure Go: it imports no cloud SDK. Backends implement Live.
//
// GPU requirements are written "MODEL[:COUNT]", case-insensitive, for example
// "A100:8", "H100", "a10g:1". A model may carry a minimum memory suffix
// ("A100-80GB:8") and alternatives separated by "|" ("A10|A10G:1" means one
// A10-class GPU on either cloud). Without a count any count matches, so the
// cheapest offer usually has one GPU.
package catalog
