"""The case file: what an agent reads first (GET /v1/cases/{id}, /timeline, audit history).

Everything the desk's main query is made of lives here, one room each:
- shapes: the view, the timeline entry and the answers (msgspec Structs);
- view_changes: how each event changes the view;
- sentences: each event told as one line of the timeline;
- handoff: the summary the next operator starts from;
- fold: events folded into a case file, the same fold live and in replay;
- rows: the case_files and timeline_parts tables, all their SQL, and the timeline answer from them;
- reading: a case read as it stands now (its row plus the stream's newer events), and CaseReader, the routes' entry;
- history: the case as it stood at a version or time, every stored event to then (audit replay).
"""
