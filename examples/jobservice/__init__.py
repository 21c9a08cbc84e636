"""An example system on the library's public API: a small HTTP job service and its client, hook, trigger
and operator. Adding it touched no file of the library."""
