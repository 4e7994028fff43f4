"""`facetrack-trainer review`: the groups of an inbox as a local web page (docs/enrolment.md)."""
