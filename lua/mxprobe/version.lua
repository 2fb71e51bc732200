-- mxprobe.version: the version string, alone, so that `mxprobe --version`
-- needs no other module (start-up, issue 10 part 5). mxprobe.VERSION and
-- mxprobe.run.VERSION are this.
return "0.2.0"
