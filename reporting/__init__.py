"""Release reports from vector runs: run history, conformance matrix, run diff, quality
gate, manual coverage and the Allure 3 HTML report.

One job: turn what a run left in its folder (``reports/runs/<run>/``) into answers a QA
lead can act on. It imports no pytest and drives no module; the pytest side
(``fixtures/reporting.py``) writes the run folder, ``tools/report`` (``python -m
reporting``) reads it.

| module | what |
|---|---|
| ``results`` | one vector's result, a run's results (``results.json``, or ``junit.xml`` alone) |
| ``runs`` | run folders: names, ``latest``, history, finishing a run |
| ``wire`` | packet tables and values without what changes every run (times, ids, ports) |
| ``notes`` | the notes' sections and coverage rows (``reporting/data/notes.yaml``) |
| ``matrix`` | section x model/firmware pass/fail/deviation counts: terminal, Markdown, HTML |
| ``diff`` | two runs compared |
| ``gate`` | known deviations and the release gate |
| ``coverage`` | which vectors cover each row of the notes' tables |
| ``allure`` | the Allure 3 HTML report (npm ``allure``, project-local) |
| ``html`` | the self-contained HTML page shared by matrix and coverage |
"""
