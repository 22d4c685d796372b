"""Services that compose the core and inference without Qt: PACS query/retrieve/send, de-identification."""
