"""Run kinds beside the search: IMP with rewinding, confirmation under a full protocol, the stability study."""
