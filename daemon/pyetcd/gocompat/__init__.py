"""Go standard-library behaviour the tools and servers reproduce to the letter.

* duration: time.ParseDuration and time.Duration.String.
* strconv: ParseBool, ParseInt and Atoi, with Go's error texts.
* flag: the flag package's command-line scanning and its value parsers.
* net: net/url escaping, html escaping and multipart form fields (the discovery service's).
"""
