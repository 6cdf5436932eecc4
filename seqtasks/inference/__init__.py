"""One inference API per task: what the commands, Lightning's predict stage and a server all call."""
